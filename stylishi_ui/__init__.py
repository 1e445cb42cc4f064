"""StyliShi's web page and HTTP API (Gradio), wired to the `stylishi` core.

    server.py         the command line: settings, the app's own temp folder, launch, shutdown (`main`)
    page.py           the page: layout and its events
    api.py            the three named endpoints for programs and agents
    cards.py          how results, timings, stats and the start-up notice read
    media.py          GET /media/... (thumbnails and example pictures) and GET /stats
    guard.py          every request's limits: size, one file per upload, rate, file paths, unknown endpoints
    intake.py         a query picture as the browser or a program sends it, checked before the core sees it
    gradio_compat.py  the only module that touches Gradio's private names (tests/test_gradio_compat.py)

Importing this package does not import Gradio: `server.main` sets GRADIO_TEMP_DIR first.
"""
