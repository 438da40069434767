"""The HTTP API (`corpusqa serve`): service.py does the work, app.py maps it to routes, client.py calls it."""
