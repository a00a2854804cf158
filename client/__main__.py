"""`python -m client` is the `thumbnailify` command."""

import sys

from client.cli import main

sys.exit(main())
