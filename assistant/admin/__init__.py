"""The console of the people who run the service (seed task 29: 好差评 followed up): accounts
and sessions, the 差评 workflow with its audit trail, figures per day and guide, knowledge gaps
and CSV exports. Plain Python over the assistant store; web/admin.py serves it."""
from .accounts import Accounts, Admin, Credentials, LoginRefused
from .review import ReviewError, Reviews

__all__ = ["Accounts", "Admin", "Credentials", "LoginRefused", "ReviewError", "Reviews"]
