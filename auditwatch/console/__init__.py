"""The web console: server-rendered pages (Jinja2) for the people who triage alerts, served at `/` by `serve` and
`api` with the REST API's access control; templates, CSS and JS ship in this package (no CDN, no build step)."""
