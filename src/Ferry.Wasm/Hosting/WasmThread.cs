using System.Runtime.ExceptionServices;

namespace Ferry.Wasm.Hosting;

/// <summary>
/// Runs WebAssembly code on a thread with a large stack. The engine traps deep recursion itself
/// ("call stack exhausted"), but a big stack lets programs use the full, deterministic call-depth limit.
/// </summary>
public static class WasmThread
{
    public const int StackBytes = 512 * 1024 * 1024;

    public static T Run<T>(Func<T> body)
    {
        T result = default!;
        ExceptionDispatchInfo? error = null;
        var thread = new Thread(() =>
        {
            try
            {
                result = body();
            }
            catch (Exception e)
            {
                error = ExceptionDispatchInfo.Capture(e);
            }
        }, StackBytes)
        { Name = "wasm" };
        thread.Start();
        thread.Join();
        error?.Throw();
        return result;
    }
}
