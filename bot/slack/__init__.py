"""The Slack adapter: ``/cpu`` answered in the channel, over HTTP or Socket Mode."""
