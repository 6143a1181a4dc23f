import sys

from aimds_ray.cli import main

sys.exit(main())
