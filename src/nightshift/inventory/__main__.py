import sys

from nightshift.inventory.cli import main

sys.exit(main())
