"""`python -m thumbnailify`: the whole service on this machine, what `make run` starts."""

from thumbnailify.launch import run

run()
