"""Options of components and architectures: which fields a user may set, and checking a value against the
field's type with one clear error.

A layer or encoding class (a Flax module) or an architecture's options dataclass declares its options as
annotated dataclass fields with defaults; :func:`component_options` lists them and :func:`check_option_types`
checks user values against the annotations (``float`` fields accept ints, ``bool`` fields only ``True`` /
``False``, ``tuple[float, ...]`` fields a list of numbers, ...), so ``omega0="abc"`` or ``learnable="maybe"``
is refused before anything is built.
"""

from __future__ import annotations

import dataclasses
import functools
import numbers
import types
import typing
from collections.abc import Mapping
from typing import Any

#: Fields of a layer/encoding module that the INR sets itself, so they are not user options.
RESERVED_FIELDS = frozenset({"features", "is_first", "dtype", "parent", "name"})


def component_options(cls: type) -> dict[str, Any]:
    """User-settable fields of a registered layer or encoding class with their defaults (name -> default)."""
    options = {}
    for f in dataclasses.fields(cls):
        if f.name in RESERVED_FIELDS or not f.init:
            continue
        if f.default is not dataclasses.MISSING:
            options[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            options[f.name] = f.default_factory()
    return options


@functools.cache
def field_types(cls: type) -> dict[str, Any]:
    """Field name -> resolved type annotation of a dataclass (``Any`` where it cannot be resolved)."""
    try:
        hints = typing.get_type_hints(cls)
    except (NameError, TypeError):  # an annotation naming something not importable here: check nothing
        hints = {}
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(cls)}


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def matches_type(value: object, annotation: Any) -> bool:
    """Whether ``value`` (as read from JSON/YAML/flags) is acceptable for a field annotated ``annotation``."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any or isinstance(annotation, typing.TypeVar):
        return True
    if annotation is type(None):
        return value is None
    if origin is typing.Union or origin is types.UnionType:
        return any(matches_type(value, a) for a in args)
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is float:
        return _is_number(value)
    if annotation is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if origin in (tuple, list) or annotation in (tuple, list):
        if not isinstance(value, (tuple, list)):
            return False
        item = args[0] if args else Any
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            return len(value) == len(args) and all(matches_type(v, a) for v, a in zip(value, args, strict=True))
        return all(matches_type(v, item) for v in value)
    if origin is not None and isinstance(origin, type) and issubclass(origin, Mapping) or annotation is dict:
        return isinstance(value, Mapping)
    if isinstance(annotation, type):
        return isinstance(value, annotation)
    return True


def type_name(annotation: Any) -> str:
    """Readable name of an annotation for error messages (``float`` -> ``a number (float)``)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    simple = {bool: "true or false (bool)", float: "a number (float)", int: "an integer (int)", str: "a string",
              type(None): "null"}
    if annotation in simple:
        return simple[annotation]
    if origin is typing.Union or origin is types.UnionType:
        return " or ".join(type_name(a) for a in args)
    if origin in (tuple, list):
        plural = {float: "numbers", int: "integers", str: "strings", bool: "bools (true or false)"}
        return f"a list of {plural[args[0]]}" if args and args[0] in plural else "a list"
    if origin is not None and isinstance(origin, type) and issubclass(origin, Mapping):
        return "a mapping of names to values"
    return getattr(annotation, "__name__", str(annotation))


def check_value(value: object, annotation: Any, what: str) -> None:
    """Raises ``ValueError("<what> must be <type>, got <value> (<its type>)")`` if ``value`` does not fit."""
    if not matches_type(value, annotation):
        raise ValueError(f"{what} must be {type_name(annotation)}, got {value!r} ({type(value).__name__})")


def check_option_types(kind: str, name: str, cls: type, options: Mapping[str, Any]) -> None:
    """Checks option names and value types of component ``name`` (a ``kind`` such as ``"layer"``).

    Raises:
      ValueError: an unknown option (listing the valid ones with their defaults), or a value whose type does
        not fit the field (naming the option, the component, the expected type and the value).
    """
    valid = component_options(cls)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} of {kind} {name!r}; valid options: "
                         f"{', '.join(f'{k} (default {v!r})' for k, v in valid.items()) or 'none'}")
    types_ = field_types(cls)
    for option, value in options.items():
        check_value(value, types_[option], f"option {option} of {kind} {name!r}")


def route_flat_overrides(options_cls: type, options: dict[str, Any], overrides: Mapping[str, Any],
                         aliases: Mapping[str, tuple[str, str]], layers: Any, encodings: Any,
                         architecture: str) -> dict[str, Any]:
    """``options`` (a dict of ``options_cls``'s fields, which include ``layer``/``encoding`` and their
    ``*_options``) updated by flat ``overrides``: fields by name (switching ``layer`` or ``encoding`` resets that
    component's options, and the layer's ``first_layer_options``), options of the chosen layer or encoding by
    their own name (``omega0=20``), or an alias ``name -> (field, option)`` of ``aliases``. Mappings are copied
    and lists become tuples.

    Raises:
      ValueError: a name that is none of these, listing the valid ones.
    """
    field_names = {f.name for f in dataclasses.fields(options_cls)}
    values = dict(options)
    for component in ("layer", "encoding"):
        if component in overrides and overrides[component] != values.get(component, getattr(options_cls, component)):
            values[f"{component}_options"] = {}
            if component == "layer":
                values["first_layer_options"] = {}
    values.update({k: v for k, v in overrides.items() if k in field_names})
    values = {k: dict(v) if isinstance(v, Mapping) else tuple(v) if isinstance(v, list) else v
              for k, v in values.items()}
    layer_name = values.get("layer", options_cls.layer)
    encoding_name = values.get("encoding", options_cls.encoding)
    layer_cls, encoding_cls = layers.get(layer_name), encodings.get(encoding_name)
    for key, value in overrides.items():
        if key in field_names:
            continue
        if key in aliases:
            where, option = aliases[key]
        elif key in component_options(layer_cls):
            where, option = "layer_options", key
        elif key in component_options(encoding_cls):
            where, option = "encoding_options", key
        else:
            raise ValueError(
                f"unknown model setting {key!r}; valid: fields architecture, dtype, in_dim, out_dim and the "
                f"{architecture} options {', '.join(sorted(field_names))}; options of layer {layer_name!r}: "
                f"{', '.join(component_options(layer_cls)) or 'none'}; options of encoding {encoding_name!r}: "
                f"{', '.join(component_options(encoding_cls)) or 'none'}")
        values.setdefault(where, {})[option] = value
    return values


def check_component_options(options: Any, layer_cls: type, encoding_cls: type) -> None:
    """Checks the layer and encoding options of an architecture's options (fields ``layer``, ``layer_options``,
    ``first_layer_options``, ``encoding``, ``encoding_options``): every value's type, then each component's own
    ``check_options`` (the first layer with its overrides applied).

    Raises:
      ValueError: naming the component, the option and what was expected.
    """
    check_option_types("encoding", options.encoding, encoding_cls, options.encoding_options)
    check_option_types("layer", options.layer, layer_cls, options.layer_options)
    check_option_types("layer", options.layer, layer_cls, options.first_layer_options)
    for cls, values in ((encoding_cls, options.encoding_options), (layer_cls, options.layer_options),
                        (layer_cls, {**options.layer_options, **options.first_layer_options})):
        check = getattr(cls, "check_options", None)
        if check is not None:
            check(dict(values))
