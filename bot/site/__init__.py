"""The site's REST API as the bot sees it: records, errors, the retrying client."""

from bot.site.client import SiteClient
from bot.site.errors import SiteAPIError
from bot.site.records import Role, User
from bot.site.retry import RetryPolicy

__all__ = ["RetryPolicy", "Role", "SiteAPIError", "SiteClient", "User"]
