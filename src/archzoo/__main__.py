import sys

from archzoo.cli.main import main

sys.exit(main())
