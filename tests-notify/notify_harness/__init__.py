"""The notification scenario harness: real peers (SMTP server, webhook receiver) and the real
`trellis` binary on its own port and database."""
