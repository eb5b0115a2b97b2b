"""Request and response models of each use case's prediction endpoint, generated from its
declarations: the entity's keys and their types, the task's prediction columns and the
features. The OpenAPI page documents them per use case.

The body is strict: a `bigint` key takes a JSON integer in int64's range (7 or 7.0; not
"7", 7.5 or true), a `string` key a JSON string, `include_features` a JSON boolean. An entity with a key missing, an extra one or
one of the wrong type is refused with 422 naming the field.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    create_model,
)

from featurehouse.usecase import Classification, UseCase

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_KEY_LENGTH = 1024


def _encodable(value: str) -> str:
    """A key must be valid UTF-8 (JSON allows lone surrogates, which no store can hold)."""
    try:
        value.encode()
    except UnicodeEncodeError:
        raise ValueError("must be valid UTF-8 text (no lone surrogates)") from None
    return value


def _integral(value: Any) -> Any:
    """JSON Schema's integer includes 7.0: take it as 7 (7.5, "7" and true stay refused)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# (A BeforeValidator wraps what is left of it: last, so the bounds stay in the schema.)
BigintKey = Annotated[int, Strict(), Field(ge=INT64_MIN, le=INT64_MAX), BeforeValidator(_integral)]
StringKey = Annotated[str, Strict(), Field(max_length=MAX_KEY_LENGTH), AfterValidator(_encodable)]
KEY_TYPES: dict[str, Any] = {"bigint": BigintKey, "string": StringKey}
FEATURE_VALUE = float | int | str | None


def camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


class ErrorResponse(BaseModel):
    """Every error: a message; a request that does not validate also lists each field."""

    message: str
    errors: list[FieldError] | None = None


class FieldError(BaseModel):
    field: str = Field(description="Where in the body, e.g. entities.0.product")
    message: str
    type: str


ErrorResponse.model_rebuild()


class ModelInfo(BaseModel):
    name: str
    version: str


def prediction_fields(use_case: UseCase) -> dict[str, tuple[Any, Any]]:
    task = use_case.task
    if isinstance(task, Classification):
        return {
            task.prediction: (
                float | None,
                Field(None, description="Probability of the positive class (null: not predicted)."),
            ),
            task.flag: (
                int | None,
                Field(None, description="1 at or above the model's decision threshold, else 0."),
            ),
        }
    return {
        task.prediction: (
            float | None,
            Field(None, description="The forecast (null: not predicted)."),
        )
    }


def entity_model(use_case: UseCase) -> type[BaseModel]:
    keys = use_case.entity.keys
    fields = {
        key: (KEY_TYPES[dtype], Field(description=f"{use_case.entity.name} key ({dtype})"))
        for key, dtype in keys.items()
    }
    return create_model(
        f"{camel(use_case.name)}Entity",
        __config__=ConfigDict(extra="forbid"),
        __doc__=f"One {use_case.entity.name}, by its keys: {', '.join(keys)}.",
        **fields,
    )


def request_model(use_case: UseCase, max_batch: int) -> type[BaseModel]:
    entity = entity_model(use_case)
    return create_model(
        f"{camel(use_case.name)}PredictRequest",
        __config__=ConfigDict(extra="forbid", strict=True),
        __doc__=f"{use_case.description} One or many entities; at most {max_batch}.",
        entities=(
            list[entity],
            Field(
                min_length=1,
                description=f"The entities to predict for (at most {max_batch}: more is 413).",
                json_schema_extra={"maxItems": max_batch},
            ),
        ),
        include_features=(
            bool,
            Field(False, description="Also answer with the feature values each prediction used."),
        ),
    )


def response_models(use_case: UseCase) -> tuple[type[BaseModel], type[BaseModel]]:
    """(one entity's answer, the whole response)."""
    keys = {k: (KEY_TYPES[t], ...) for k, t in use_case.entity.keys.items()}
    result = create_model(
        f"{camel(use_case.name)}Prediction",
        __doc__="One entity's answer.",
        **keys,
        status=(
            str,
            Field(
                description='"ok"; "not found" (no online features: no prediction); "missing'
                ' <views>" (some features absent: no prediction); "expired <views>" (features'
                " older than the view's TTL: predicted, unless the service refuses them)."
            ),
        ),
        **prediction_fields(use_case),
        feature_age_seconds=(
            float | None,
            Field(None, description="Age of the oldest feature view's row used."),
        ),
        features_as_of=(datetime | None, Field(None, description="Event time of that row (UTC).")),
        message=(str | None, Field(None, description="Why there is no prediction.")),
        features=(
            dict[str, FEATURE_VALUE] | None,
            Field(None, description="The features used (with include_features)."),
        ),
    )
    response = create_model(
        f"{camel(use_case.name)}PredictResponse",
        request_id=(str, ...),
        use_case=(str, ...),
        model=(ModelInfo, ...),
        predictions=(list[result], ...),
    )
    return result, response
