"""`imgproc reprocess`: plan (what is missing or stale), send (queue or async invokes), batch (S3 Batch Operations)."""
