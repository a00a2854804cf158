"""The Python client of the Thumbnailify API: request building (`client.calls`), sending with
retries (`client.session`), and the `thumbnailify` command line (`client.cli`)."""
