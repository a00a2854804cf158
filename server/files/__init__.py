"""Files backends of the server, one module each: `filesystem` (a volume), `s3` (a bucket)."""
