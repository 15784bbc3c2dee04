"""`paywire dev`: the emulators, paywire's API and the demo shop in one process, for a
developer's machine and the browser tests.

- `stack`: `DevStack`, the servers on one event loop, and its settings and banner;
- `aws`: `AwsDevStack`, the same demo served through the Lambda handlers against moto;
- `runner`: `run` (until a signal, the command) and `running` (a test's block).
"""
