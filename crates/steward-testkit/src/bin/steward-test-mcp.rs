//! An MCP server on stdin and stdout with the test tools of `steward_testkit::mcp`, for trying
//! stdio MCP servers by hand (`MCP_COUNT_FILE` names the file the `count` tool appends to).

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    steward_testkit::mcp::serve_stdio().await
}
