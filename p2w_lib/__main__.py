import sys

from p2w_lib.app.cli import main

sys.exit(main())
