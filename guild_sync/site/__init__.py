"""The site's REST API as the bot sees it: records, errors, the retrying client."""

from guild_sync.site.client import SiteClient
from guild_sync.site.errors import SiteAPIError
from guild_sync.site.records import Role, User
from guild_sync.site.retry import RetryPolicy

__all__ = ["RetryPolicy", "Role", "SiteAPIError", "SiteClient", "User"]
