"""discord.py extensions shipped with the project."""
