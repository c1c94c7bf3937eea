"""The audit trail: the hash-chained log in the index (`chain`) and its anchors outside it
(`anchor`: S3 checkpoints and the local head file)."""
