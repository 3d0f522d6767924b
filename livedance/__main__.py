import sys

from livedance.cli import main

sys.exit(main())
