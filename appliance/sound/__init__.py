"""Sound the box plays: its shared outputs and their priority rule, alarm sounds, the LINE IN intercom."""
