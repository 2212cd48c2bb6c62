"""Feast entities: the two things features describe."""

from feast import Entity
from feast.value_type import ValueType

user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.STRING, description="An app user")
item = Entity(name="item", join_keys=["item_id"], value_type=ValueType.STRING, description="A plan or content item")

ENTITIES = [user, item]
