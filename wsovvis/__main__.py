import sys

from wsovvis.cli import main

sys.exit(main())
