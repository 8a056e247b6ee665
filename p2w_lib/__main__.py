import sys

from p2w_lib.cli import main

sys.exit(main())
