"""Every Python block of README.md and docs/*.md, run as written."""
