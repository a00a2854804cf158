"""What server and worker share: settings, media types, the state record, keys, embedded backends."""
