"""Web front ends: citizen chat (/chat), 12345 hotline copilot (/copilot), service-hall kiosk (/kiosk)."""
