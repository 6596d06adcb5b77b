"""The doors: command line, HTTP server, notebook widget, notebook helpers, the launcher. Nothing imports them."""
