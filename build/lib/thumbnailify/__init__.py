"""Thumbnailify: photos and videos in, thumbnails out, asynchronously.

`thumbnailify.server` (the aiohttp API), `thumbnailify.worker` (thumbnail and webhook workers),
`thumbnailify.client` (the command line client and its library); the modules here are the domain
(media types, the state record), the settings, the process launcher and the backends.
"""
