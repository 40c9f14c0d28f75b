using ChatStack.Tokenization;

namespace ChatStack.ChatApi.Budget;

/// <summary>
/// The token count of one model call's answer as it streams: exact (ChatStack.Tokenization's incremental counter
/// over the run's own answer text, the same total as counting the final text once, at linear cost), plus an
/// estimate and a sound upper bound that let the agent count only when a checkpoint is due or the budget may have
/// been reached.
/// </summary>
internal sealed class AnswerTokenCounter
{
    private readonly IncrementalTokenCounter _exact;
    private readonly AnswerText _answer;
    private readonly int _start;

    /// <summary>Counts what is appended to <paramref name="answer"/> from now on (a new text when none is given).</summary>
    public AnswerTokenCounter(ITokenCounter counter, AnswerText? answer = null)
    {
        _exact = counter.CreateIncrementalCounter();
        _answer = answer ?? new AnswerText();
        _start = _answer.Length;
    }

    /// <summary>Whether a count is due for a checkpoint or a limit of this call's text (<see cref="IncrementalTokenCounter.CountDue"/>).</summary>
    public bool CountDue(int checkpoint, int limit) => _exact.CountDue(_answer.Length - _start, checkpoint, limit);

    /// <summary>Appends a delta to the answer without counting it.</summary>
    public void Add(ReadOnlySpan<char> delta)
    {
        _answer.Append(delta);
        _exact.Appended(delta);
    }

    /// <summary>Appends a delta and returns the exact token count of this call's text so far.</summary>
    public int Append(ReadOnlySpan<char> delta)
    {
        Add(delta);
        return Count();
    }

    /// <summary>The exact token count of this call's text so far.</summary>
    public int Count() => _exact.CountTokens(_answer.AsSpan(_start));
}
