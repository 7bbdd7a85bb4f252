"""The web console: static files (``index.html``, ``console.js``, ``console.css``,
``favicon.svg``) that the node serves at ``/console/`` (:mod:`conveyor.server.console`).

Hand-written HTML, CSS and JavaScript with SVG charts: no framework, no build step, no
fonts or scripts from other hosts, so it works offline. The page talks to the node only
through the admin API (``/api/v1/``). ``docs/console.md`` describes it.
"""
