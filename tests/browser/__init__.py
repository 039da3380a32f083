"""The browser example in a real (headless) chromium, against a real roomwire server."""
