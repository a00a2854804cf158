"""`python -m thumbnailify.client` is the `thumbnailify` command."""

import sys

from thumbnailify.client.cli import main

sys.exit(main())
