"""archzoo: the classic deep-learning architectures, each as a readable reference and a fast path,
trained and evaluated end to end on real data."""

__version__ = "0.1.0"
