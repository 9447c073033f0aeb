"""The gallery page: renditions side by side, for `process --report` and `imgproc gallery`."""
