"""The `outdial` command line: everything a shell runs, and nothing the servers import.

`main` parses the command and starts the API, the dispatch worker or the agent worker
(`preflight` checks their services first; `dev` runs all three in one terminal);
`agent_console` talks to an agent from a terminal; `client` holds the commands that reach a
running API over HTTP only (`outdial calls list` ...).
"""
