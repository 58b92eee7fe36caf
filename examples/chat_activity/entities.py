"""Entities shared by several feature views (and by every version of a view)."""

from feature_platform.spec import Entity

USER = Entity(name="user", join_key="user_id", dtype="int64", description="A user of the chat product")
