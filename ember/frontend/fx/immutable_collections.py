"""torch.fx's read-only list and dict (`ember.fx.immutable_collections`).

ember's nodes hold plain lists and dicts (docs/fx.md); these types exist for code that
builds or checks them itself. Mutation raises TypeError naming the way to edit."""


def _refuse(self, *args, **kwargs):
    raise TypeError(f"'{type(self).__name__}' object does not support mutation. If you are "
                    "trying to modify the kwargs of an fx node, reassign the node's args or "
                    "kwargs (node.args = new_args), and build the new_args as a new value.")


class immutable_list(list):
    """A list that refuses in-place changes; hashable, as a tuple of its items."""
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _refuse
    append = extend = insert = pop = remove = clear = sort = reverse = _refuse

    def __hash__(self):
        return hash(tuple(self))

    def __reduce__(self):
        return (immutable_list, (tuple(self),))


class immutable_dict(dict):
    """A dict that refuses in-place changes; hashable, as a tuple of its items."""
    __setitem__ = __delitem__ = __ior__ = _refuse
    clear = pop = popitem = setdefault = update = _refuse

    def __hash__(self):
        return hash(tuple(self.items()))

    def __reduce__(self):
        return (immutable_dict, (tuple(self.items()),))
