"""Check cloud request bodies against the real API schemas that ship offline with the SDKs.

One section per cloud; each exposes a function that returns a list of problems (empty = valid), each
naming the dotted path of the offending field, so a test can assert on it and a failure says what to fix.
"""
import sys
import typing


# --- Azure: the azure-mgmt-* SDK model classes ------------------------------------------------------------
# Every REST property of a resource is a field of its SDK model class. Two generations of generated code
# exist: typespec-based packages (`rest_field`, azure-mgmt-containerservice >= 40) keep the REST name in
# each _RestField and the Python type in the class annotations; msrest-based ones (older releases) keep
# both in `_attribute_map` ({attr: {"key": "rest.name", "type": "[Model]"}}, dotted keys = flattened).
# The walker follows nested models, lists and dicts; an unknown field is a problem.

def _azure_typespec_fields(cls):
    """REST name -> annotation for a typespec (rest_field) model class."""
    import typing as _t
    if not hasattr(cls, "_attr_to_rest_field"):
        cls()  # the model base computes the attribute -> rest field map on first instantiation
    module = sys.modules[cls.__module__]
    namespace = dict(vars(module))
    # Annotations name sibling classes as "_models.X" (imported only under TYPE_CHECKING).
    namespace.setdefault("_models", sys.modules[cls.__module__.rsplit(".", 1)[0]])
    hints = {}
    for klass in reversed(cls.__mro__):
        for attr, annotation in getattr(klass, "__annotations__", {}).items():
            hints[attr] = annotation
    fields = {}
    for attr, rest_field in cls._attr_to_rest_field.items():
        annotation = hints.get(attr)
        if isinstance(annotation, str):
            annotation = _t.ForwardRef(annotation)
        if isinstance(annotation, _t.ForwardRef) or annotation is not None:
            annotation = _resolve(annotation, namespace)
        fields[rest_field._rest_name] = annotation
    return fields


def _resolve(annotation, namespace):
    """Evaluate forward references (also inside Optional/List/Dict/Union) in the model module's namespace."""
    if isinstance(annotation, typing.ForwardRef):
        return _resolve(eval(annotation.__forward_arg__, namespace), namespace)  # pylint: disable=eval-used
    if isinstance(annotation, str):
        return _resolve(eval(annotation, namespace), namespace)  # pylint: disable=eval-used
    args = getattr(annotation, "__args__", None)
    origin = typing.get_origin(annotation)
    if args and origin is not None:
        resolved = tuple(_resolve(a, namespace) for a in args)
        if origin is typing.Union:
            return typing.Union[resolved]
        if origin in (list, typing.List):
            return typing.List[resolved[0]]
        if origin in (dict, typing.Dict):
            return typing.Dict[resolved[0], resolved[1]]
    return annotation


def _is_model(value):
    """An SDK model class: msrest (`_attribute_map`) or typespec (subclass of `_utils.model_base.Model`)."""
    if not isinstance(value, type):
        return False
    return hasattr(value, "_attribute_map") or any(
        klass.__name__ == "Model" and klass.__module__.endswith("model_base") for klass in value.__mro__[1:])


def _azure_check(annotation, value, where, problems, models_module):
    if value is None or annotation is None:
        return
    origin = typing.get_origin(annotation)
    if origin is typing.Union:
        candidates = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(candidates) == 1:
            return _azure_check(candidates[0], value, where, problems, models_module)
        # Union[Model, ...] / Union[str, Enum]: check against the structured candidate that fits.
        for candidate in candidates:
            if _is_model(candidate) and isinstance(value, dict):
                return _azure_check(candidate, value, where, problems, models_module)
            if typing.get_origin(candidate) in (list, dict):
                return _azure_check(candidate, value, where, problems, models_module)
        return
    if origin is list:
        if not isinstance(value, list):
            problems.append("%s: expected a list, got %r" % (where, value))
            return
        (item,) = typing.get_args(annotation)
        for i, element in enumerate(value):
            _azure_check(item, element, "%s[%d]" % (where, i), problems, models_module)
        return
    if origin is dict:
        if not isinstance(value, dict):
            problems.append("%s: expected an object (map), got %r" % (where, value))
            return
        _key, item = typing.get_args(annotation)
        for key, element in value.items():
            _azure_check(item, element, "%s.%s" % (where, key), problems, models_module)
        return
    if _is_model(annotation):
        if not isinstance(value, dict):
            problems.append("%s: expected an object (%s), got %r" % (where, annotation.__name__, value))
            return
        problems.extend(azure_body_problems(annotation, value, where, models_module))
        return
    if annotation is bool and not isinstance(value, bool):
        problems.append("%s: expected a boolean, got %r" % (where, value))
    elif annotation is int and (isinstance(value, bool) or not isinstance(value, int)):
        problems.append("%s: expected an integer, got %r" % (where, value))
    elif annotation is float and (isinstance(value, bool) or not isinstance(value, (int, float))):
        problems.append("%s: expected a number, got %r" % (where, value))
    elif annotation is str and not isinstance(value, str):
        problems.append("%s: expected a string, got %r" % (where, value))


_MSREST_SCALARS = {"str": str, "int": int, "float": float, "bool": bool}


def _msrest_annotation(type_name, models_module):
    """An msrest `_attribute_map` type string ('[Model]', '{str}', 'Model', 'str') -> a typing annotation."""
    if type_name.startswith("[") and type_name.endswith("]"):
        return typing.List[_msrest_annotation(type_name[1:-1], models_module)]
    if type_name.startswith("{") and type_name.endswith("}"):
        return typing.Dict[str, _msrest_annotation(type_name[1:-1], models_module)]
    if type_name in _MSREST_SCALARS:
        return _MSREST_SCALARS[type_name]
    return getattr(models_module, type_name, None)  # enums, dates and unknown names: not checked further


def _azure_msrest_fields(cls, models_module):
    """REST name -> annotation for an msrest model; flattened keys ("properties.count") become nested."""
    fields = {}
    nested = {}
    for info in cls._attribute_map.values():
        parts = info["key"].replace("\\.", "\0").split(".")
        parts = [p.replace("\0", ".") for p in parts]
        if len(parts) == 1:
            fields[parts[0]] = _msrest_annotation(info["type"], models_module)
        else:
            nested.setdefault(parts[0], {})[".".join(parts[1:])] = info
    for head, attributes in nested.items():
        flat = type("Flattened_%s_%s" % (cls.__name__, head), (object,), {"_attribute_map": dict(
            ("a%d" % i, {"key": key, "type": info["type"]}) for i, (key, info) in enumerate(attributes.items()))})
        fields[head] = flat
    return fields


def azure_body_problems(model, body, where="body", models_module=None):
    """Fields of a JSON request `body` that the Azure SDK `model` class (and its nested models) does not
    name, and structural mismatches (object/list/map/scalar type). Returns a list of messages."""
    if models_module is None:
        models_module = sys.modules[model.__module__.rsplit(".", 1)[0]]
    if hasattr(model, "_attribute_map"):
        fields = _azure_msrest_fields(model, models_module)
    else:
        fields = _azure_typespec_fields(model)
    problems = []
    for key, value in body.items():
        if key not in fields:
            known = ", ".join(sorted(fields))
            problems.append("%s.%s: not a field of %s (known: %s)" % (where, key, model.__name__, known))
            continue
        _azure_check(fields[key], value, "%s.%s" % (where, key), problems, models_module)
    return problems


# --- GCP: the discovery documents that ship with google-api-python-client ---------------------------------
# googleapiclient/discovery_cache/documents/<api>.<version>.json describe every method (HTTP verb, path
# template, request schema) and every schema (properties with type/format/$ref/items/additionalProperties/
# enum). A request is matched to its method by verb and path; its body is walked against the method's
# request schema: an unknown field, a wrong JSON type or a value outside an enum is a problem.

_DISCOVERY_CACHE = {}


def load_discovery(name):
    """The discovery document `name` (e.g. "container.v1", "compute.v1") from google-api-python-client."""
    if name not in _DISCOVERY_CACHE:
        import json
        import os
        import googleapiclient  # google-api-python-client (requirements/dev.txt)
        path = os.path.join(os.path.dirname(googleapiclient.__file__), "discovery_cache", "documents", name + ".json")
        with open(path) as handle:
            _DISCOVERY_CACHE[name] = json.load(handle)
    return _DISCOVERY_CACHE[name]


def _discovery_methods(document):
    """(http method, compiled path regex, method id, request schema name or None) for every method."""
    import re as _re
    found = []

    def walk(resources, key):
        for resource in (resources or {}).values():
            for method in (resource.get("methods") or {}).values():
                template = method.get(key)
                if template:
                    pattern = ""
                    for part in _re.split(r"(\{\+?[^}]+\})", template):
                        if part.startswith("{+"):
                            pattern += ".+"
                        elif part.startswith("{"):
                            pattern += "[^/]+"
                        else:
                            pattern += _re.escape(part)
                    path = _re.compile("^/" + _re.escape(document.get("servicePath", "")) + pattern + "$")
                    found.append((method["httpMethod"], path, method["id"], (method.get("request") or {}).get("$ref")))
            walk(resource.get("resources"), key)
    # Flat paths first (each names every segment); "{+name}" paths only for methods without one.
    walk(document.get("resources"), "flatPath")
    walk(document.get("resources"), "path")
    return found


def discovery_method(document, http_method, path):
    """The (method id, request schema) a request with this verb and URL path calls, or None."""
    key = ("methods", id(document))
    if key not in _DISCOVERY_CACHE:
        _DISCOVERY_CACHE[key] = _discovery_methods(document)
    for verb, regex, method_id, request in _DISCOVERY_CACHE[key]:
        if verb == http_method and regex.match(path):
            return method_id, request
    return None


_JSON_TYPES = {"string": (str,), "boolean": (bool,), "integer": (int,), "number": (int, float), "array": (list,),
               "object": (dict,)}


def _discovery_check(document, schema, value, where, problems):
    if "$ref" in schema:
        ref = schema["$ref"]
        if ref not in document["schemas"]:
            problems.append("%s: the document has no schema %s" % (where, ref))
            return
        schema = document["schemas"][ref]
    kind = schema.get("type")
    if kind == "any" or kind is None and not schema.get("properties"):
        return
    kind = kind or "object"
    expected = _JSON_TYPES.get(kind)
    if expected and (not isinstance(value, expected) or isinstance(value, bool) and kind in ("integer", "number")):
        fmt = " (%s)" % schema["format"] if schema.get("format") else ""
        problems.append("%s: expected %s%s, got %r" % (where, kind, fmt, value))
        return
    if kind == "string" and schema.get("enum") and value not in schema["enum"]:
        problems.append("%s: %r is not one of %s" % (where, value, ", ".join(schema["enum"])))
    elif kind == "array":
        for i, item in enumerate(value):
            _discovery_check(document, schema.get("items") or {}, item, "%s[%d]" % (where, i), problems)
    elif kind == "object":
        properties = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            if properties and key in properties:
                _discovery_check(document, properties[key], item, "%s.%s" % (where, key), problems)
            elif extra is not None:
                _discovery_check(document, extra, item, "%s.%s" % (where, key), problems)
            else:
                problems.append("%s.%s: not a field of %s (known: %s)" % (
                    where, key, schema.get("id", "this object"), ", ".join(sorted(properties or {}))))


def discovery_body_problems(document, schema_name, body, where="body"):
    """Problems of a JSON request `body` against schema `schema_name` of a discovery `document` (a dict
    from load_discovery): unknown fields, wrong JSON types, values outside an enum. Empty list = valid."""
    problems = []
    _discovery_check(document, {"$ref": schema_name}, body, where, problems)
    return problems


def discovery_request_problems(document, http_method, path, body):
    """Problems of one request: its verb and path must name a method of the document, and its body (if
    any) must fit that method's request schema (a body for a method that takes none is a problem)."""
    found = discovery_method(document, http_method, path)
    if found is None:
        return ["%s %s: no method of %s has this verb and path" % (http_method, path, document.get("id"))]
    method_id, request = found
    if body is None:
        return []
    if request is None:
        return ["%s %s (%s): the method takes no request body" % (http_method, path, method_id)]
    return discovery_body_problems(document, request, body, where="%s body" % method_id)
