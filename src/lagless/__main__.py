import sys

from lagless.cli import main

sys.exit(main())
