"""The `outdial` commands that talk to a running API over HTTP (`outdial calls list` ...).

Invariant: these commands reach Outdial only through its public HTTP API, as any client
would: they import nothing of the API's own layers, so what they show is what the API
answers. Registered on the `outdial` parser by `api.cli.main` (`commands.add_client_commands`).
"""
