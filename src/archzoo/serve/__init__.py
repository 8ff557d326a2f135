"""``archzoo serve``: a local web page over the trained runs (the ``serve`` extra: FastAPI and uvicorn).

The page calls the runs' own verbs (``archzoo.load(RUN).predict``, ``generate``, ``translate``, ...)
through a small JSON API; nothing here computes what a task computes. ``limits`` bounds every input
and the work in flight, ``catalog`` finds and loads the runs, ``app`` holds the routes (and the work of
most tabs), ``tabs`` the Speech and Hopfield tabs' work, ``lab`` the lab report pages, ``pictures`` the
PNG data URLs.
"""
