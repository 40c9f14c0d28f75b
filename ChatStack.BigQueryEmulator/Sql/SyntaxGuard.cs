using ChatStack.BigQueryEmulator.Apis;

namespace ChatStack.BigQueryEmulator.Sql;

/// <summary>
/// The translator reads tokens by position; SQL too short for a construct (TIMESTAMP_DIFF(a), a dangling CREATE)
/// runs off the end. That is the caller's syntax error, answered as invalidQuery rather than a 500.
/// </summary>
public static class SyntaxGuard
{
    public static T Run<T>(Func<T> translate)
    {
        try
        {
            return translate();
        }
        catch (Exception e) when (e is ArgumentOutOfRangeException or IndexOutOfRangeException or InvalidOperationException or NullReferenceException or FormatException)
        {
            throw BigQueryError.InvalidQuery("Syntax error: the statement is incomplete or malformed near a construct the emulator translates.");
        }
    }
}
