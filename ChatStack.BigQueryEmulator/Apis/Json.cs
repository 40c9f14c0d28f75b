using System.Text.Json.Serialization.Metadata;

namespace ChatStack.BigQueryEmulator.Apis;

internal static class Json
{
    public static IResult Ok<T>(T value, JsonTypeInfo<T> typeInfo) => Results.Json(value, typeInfo, "application/json; charset=UTF-8");
}
