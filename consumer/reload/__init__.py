"""Hot reload of versioned sources: rule sets and models, from a file or S3."""
