"""Published adapter versions: the files and their checksums (registry.py), and a version described
as text (report.py). Running chats swap versions in through tui/swap.py and engine/local.py."""
