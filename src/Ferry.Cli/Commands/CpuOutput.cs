using System.Text;
using System.Text.Json;

namespace Ferry.Cli.Commands;

/// <summary>
/// Output conventions shared by the `cpu` commands: with --json, stdout carries exactly one JSON document and
/// everything for people goes to stderr; without it, the human text goes to stdout.
/// </summary>
internal static class CpuOutput
{
    public static TextWriter Human(bool json) => json ? Console.Error : Console.Out;

    public static void WriteJson(Action<Utf8JsonWriter> write)
    {
        using var stream = Console.OpenStandardOutput();
        using (var writer = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            write(writer);
        }
        stream.Write("\n"u8);
    }

    public static string Join(IEnumerable<string> items, string empty = "-")
    {
        var text = string.Join(' ', items);
        return text.Length == 0 ? empty : text;
    }

    public static string Wrap(string text, int width, string indent)
    {
        var sb = new StringBuilder();
        int column = 0;
        foreach (var word in text.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            if (column > 0 && column + word.Length + 1 > width)
            {
                sb.Append('\n').Append(indent);
                column = 0;
            }
            else if (column > 0)
            {
                sb.Append(' ');
                column++;
            }
            sb.Append(word);
            column += word.Length;
        }
        return sb.ToString();
    }
}
