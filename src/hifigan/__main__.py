import sys

from hifigan.cli.main import main

sys.exit(main())
