"""S3: the only boto3 user (`objects`: puts, multipart, checksums) and object keys (`keys`)."""
