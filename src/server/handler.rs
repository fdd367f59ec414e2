//! `MeshServer`: the rmcp `ServerHandler`. It declares the tools and resources capabilities
//! (resources with subscribe and list changes), and answers the methods of capabilities it does not declare with
//! "method not found".

use std::future::Future;
use std::sync::Arc;

use futures::FutureExt;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CompleteRequestParams, CompleteResult, Implementation,
    InitializeRequestParams, InitializeResult, ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult,
    ListToolsResult, PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult,
    ResourceContents, ServerCapabilities, ServerConfig, SubscribeRequestParams, SubscriptionFilter, Tool,
    UnsubscribeRequestParams,
};
use rmcp::service::{NotificationContext, RequestContext, SubscriptionContext};
use rmcp::{ErrorData, RoleServer, ServerHandler};

use super::binding::Binding;
use super::join;
use super::listing::{ListChanges, ListNotifier};
use super::owners::SessionOwners;
use super::profile::Profile;
use super::resources::{self, MeshResource};
use super::session::{Presence, SessionAgent};
use super::subscriptions::{self, Subscriptions};
use super::{errors, tools};
use crate::mesh::call::{CallContext, ProgressSink};
use crate::mesh::Engine;

/// Progress of a long tool as MCP `notifications/progress` for the request's progress token.
struct McpProgress {
    peer: rmcp::Peer<RoleServer>,
    token: rmcp::model::ProgressToken,
}

impl ProgressSink for McpProgress {
    fn report(&self, progress: f64, total: Option<f64>, message: String) -> futures::future::BoxFuture<'_, ()> {
        Box::pin(async move {
            let mut param =
                rmcp::model::ProgressNotificationParam::new(self.token.clone(), progress).with_message(message);
            param.total = total;
            if let Err(e) = self.peer.notify_progress(param).await {
                tracing::debug!(error = %e, "progress notification not sent");
            }
        })
    }
}

const INSTRUCTIONS: &str = "mesh-mcp coordinates agents as a mesh on one durable store shared by \
every process. Start with swarm_init, then agent_spawn for each agent (keep its agentToken: acting \
as the agent needs it), then daa_communication, memory_usage and swarm_status.";

#[derive(Clone)]
pub struct MeshServer {
    engine: Engine,
    /// Resource subscriptions of the one session this handler serves (see [`Self::session`]).
    subscriptions: Arc<Subscriptions>,
    /// Owner tokens this session's `swarm_init` calls were issued, passed on to its later calls.
    owners: Arc<SessionOwners>,
    /// The process's watcher of the resource list, shared by every session.
    list_changes: Arc<ListChanges>,
    /// This session's forwarding of resource list changes.
    list_notifier: Arc<ListNotifier>,
    /// The tools this server offers.
    profile: Arc<Profile>,
    /// How this transport's sessions hold their agents' presence.
    presence: Presence,
    /// The agent this session acts as, once it is bound to one (see [`super::session`]).
    agent: Arc<SessionAgent>,
}

impl MeshServer {
    /// The server of a process: it starts the watcher of the resource list.
    pub fn new(engine: Engine) -> Self {
        let list_changes = ListChanges::start(&engine);
        Self::for_session(engine, list_changes, Arc::default(), Presence::default())
    }

    /// This server, offering only the tools of `profile`.
    pub fn with_profile(self, profile: Profile) -> Self {
        Self { profile: Arc::new(profile), ..self }
    }

    /// This server, its sessions holding presence as `presence` says (HTTP's watch clients).
    pub fn with_presence(self, presence: Presence) -> Self {
        Self::for_session(self.engine, self.list_changes, self.profile, presence)
    }

    /// This server for HTTP: its sessions hold their agents' presence while their clients show
    /// life (see [`super::http::attendance`]).
    pub fn for_http(self) -> Self {
        match self.presence.attendance() {
            Some(_) => self,
            None => self.with_presence(Presence::http(Arc::default())),
        }
    }

    /// Bind this session to `binding`'s agent (a stdio server: one session per process).
    pub fn bind(&self, binding: Binding) -> crate::error::Result<Arc<Binding>> {
        self.agent.bind(binding)
    }

    /// End this session's presence and wait until its agent is offline.
    pub async fn close(&self) {
        self.agent.close().await
    }

    pub fn presence(&self) -> &Presence {
        &self.presence
    }

    fn for_session(engine: Engine, list_changes: Arc<ListChanges>, profile: Arc<Profile>, presence: Presence) -> Self {
        Self {
            agent: Arc::new(SessionAgent::new(engine.clone(), presence.clone())),
            engine,
            subscriptions: Arc::default(),
            owners: Arc::default(),
            list_notifier: Arc::new(ListNotifier::new(&list_changes)),
            list_changes,
            profile,
            presence,
        }
    }

    /// A handler for a new session: the same engine, resource list watcher and profile, nothing
    /// of the session. Transports that serve several sessions start each with this rather than
    /// a clone, which would share them.
    pub fn session(&self) -> Self {
        Self::for_session(self.engine.clone(), self.list_changes.clone(), self.profile.clone(), self.presence.clone())
    }

    /// The `tools/list` entries this server offers.
    fn offered(&self) -> impl Iterator<Item = &'static Tool> + '_ {
        tools::listed().iter().filter(|t| self.profile.offers(&t.name))
    }

    /// The `(swarm, agent id)` this session is bound to, if any.
    fn bound(&self) -> Option<(&str, &str)> {
        self.agent.binding().map(|b| b.ids())
    }

    /// The agent a request acts as: its session's or, for a request served without a session
    /// (HTTP on protocol 2026-07-28), the one its `Mesh-Agent-Token` header names. Notes the
    /// HTTP session id on the way, for the session's presence.
    async fn acting(&self, extensions: &rmcp::model::Extensions) -> Result<Option<Arc<Binding>>, ErrorData> {
        let parts = extensions.get::<http::request::Parts>();
        let session = parts.and_then(|p| p.headers.get("mcp-session-id")).and_then(|v| v.to_str().ok());
        if let Some(id) = session {
            self.agent.learn_session(id);
        }
        if let Some(bound) = self.agent.binding() {
            return Ok(Some(bound.clone()));
        }
        let Some(parts) = parts.filter(|_| session.is_none()) else { return Ok(None) };
        let binding = Binding::from_headers(&self.engine, &parts.headers).await;
        binding.map(|b| b.map(Arc::new)).map_err(|e| errors::binding_error(&e))
    }

    /// Whether a request is served without a session (HTTP on protocol 2026-07-28).
    fn sessionless(extensions: &rmcp::model::Extensions) -> bool {
        extensions.get::<http::request::Parts>().is_some_and(|p| !p.headers.contains_key("mcp-session-id"))
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}

fn method_not_found(method: &'static str) -> ErrorData {
    ErrorData::new(
        rmcp::model::ErrorCode::METHOD_NOT_FOUND,
        format!("{method} is not supported: mesh-mcp declares only the tools and resources capabilities"),
        None,
    )
}

/// What `ServerHandler`'s methods do. Each method hands rmcp these futures boxed: rmcp spawns
/// every request as a task holding the handler's future, which unboxed is as large as the largest
/// of ours, and copying it into each task cost about 110k instructions a request (two thirds of
/// a `ping`, measured with callgrind).
impl MeshServer {
    /// An HTTP session whose `initialize` carries a `Mesh-Agent-Token` header is bound to that
    /// agent for its whole life; an unknown token fails the handshake.
    async fn handle_initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, ErrorData> {
        if let Some(parts) = context.extensions.get::<http::request::Parts>() {
            let asked =
                Binding::from_headers(&self.engine, &parts.headers).await.map_err(|e| errors::binding_error(&e))?;
            if let Some(binding) = asked {
                let bound = self.agent.bind(binding).map_err(|e| errors::binding_error(&e))?;
                tracing::info!(agent = %bound.name, swarm = %bound.swarm_id, "an HTTP session acts as its bound agent");
            }
        }
        context.peer.set_peer_info(request.clone());
        self.negotiate_initialize(&request)
    }

    async fn handle_initialized(&self, context: NotificationContext<RoleServer>) {
        if let Err(e) = self.acting(&context.extensions).await {
            tracing::debug!(error = ?e, "session id not noted");
        }
        self.agent.attach_peer(context.peer.clone());
        self.list_notifier.start(context.peer);
    }

    async fn handle_call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if !self.profile.offers(&request.name) {
            return Err(errors::unknown_tool(&request.name));
        }
        let mut args = request.arguments.map(serde_json::Value::Object).unwrap_or(serde_json::Value::Null);
        let binding = self.acting(&context.extensions).await?;
        if let Some(binding) = &binding {
            binding.apply(&request.name, &mut args);
        }
        self.owners.attach(&self.engine, &request.name, &mut args).await;
        let progress = context
            .meta
            .get_progress_token()
            .map(|token| Arc::new(McpProgress { peer: context.peer.clone(), token }) as Arc<dyn ProgressSink>);
        let ctx = CallContext { cancel: context.ct.clone(), progress };
        let result = if join::asks(&request.name, &args) {
            Some(match Self::sessionless(&context.extensions) {
                true => Err(crate::error::MeshError::invalid(
                    "join",
                    "this request is served without a session (protocol 2026-07-28): bind with the Mesh-Agent-Token header",
                )),
                false => join::join(&self.engine, &self.agent, args, ctx).await,
            })
        } else {
            tools::call_with(&self.engine, &request.name, args, ctx).await
        };
        match result {
            None => Err(errors::unknown_tool(&request.name)),
            Some(Ok(out)) => {
                self.owners.remember(&out.text);
                let out = match &binding {
                    Some(binding) => binding.redact(out),
                    None => out,
                };
                Ok(errors::tool_success(out).into())
            }
            Some(Err(e)) => Ok(errors::tool_error(&e).into()),
        }
    }

    async fn handle_list_resources(
        &self,
        _r: Option<PaginatedRequestParams>,
        c: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let acting = self.acting(&c.extensions).await?;
        match resources::list(&self.engine, acting.as_deref().map(Binding::ids)).await {
            Ok(listed) => Ok(ListResourcesResult::with_all_items(listed)),
            Err(e) => Err(errors::resource_error("mesh://", &e)),
        }
    }

    async fn handle_read_resource(
        &self,
        r: ReadResourceRequestParams,
        c: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let acting = self.acting(&c.extensions).await?;
        let bound = acting.as_deref().map(Binding::ids);
        let resource = MeshResource::parse_bound(&r.uri, bound).ok_or_else(|| errors::unknown_resource(&r.uri))?;
        let json = resource.read(&self.engine).await.map_err(|e| errors::resource_error(&r.uri, &e))?;
        let contents = ResourceContents::text(json, r.uri).with_mime_type(resources::MIME_JSON);
        Ok(ReadResourceResult::new(vec![contents]).into())
    }

    async fn handle_subscribe(
        &self,
        r: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.acting(&context.extensions).await?;
        let resource =
            MeshResource::parse_bound(&r.uri, self.bound()).ok_or_else(|| errors::unknown_resource(&r.uri))?;
        // Subscribe to what exists: reading it first answers an unknown swarm with not found.
        resource.read(&self.engine).await.map_err(|e| errors::resource_error(&r.uri, &e))?;
        self.subscriptions
            .subscribe(&self.engine, context.peer, resource)
            .await
            .map_err(|e| errors::resource_error(&r.uri, &e))
    }

    async fn handle_listen(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        subscriptions::listen(&self.engine, &self.list_changes, self.bound(), context).await
    }
}

impl ServerHandler for MeshServer {
    fn get_info(&self) -> ServerConfig {
        let mut server_info = Implementation::from_build_env();
        server_info.name = env!("CARGO_PKG_NAME").to_string();
        server_info.version = env!("CARGO_PKG_VERSION").to_string();
        let mut info = ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .enable_resources_subscribe()
                .enable_resources_list_changed()
                .build(),
        );
        let channel = (super::channel::CAPABILITY.to_string(), serde_json::Map::new());
        info.capabilities.experimental = Some(std::collections::BTreeMap::from([channel]));
        info.server_info = server_info;
        info.instructions = Some(match self.agent.binding() {
            Some(b) => format!(
                "{INSTRUCTIONS} This session acts as agent `{}` of swarm `{}`: calls default to it and need no \
                 agentToken.",
                b.name, b.swarm_id
            ),
            None => INSTRUCTIONS.to_string(),
        });
        info
    }

    fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<InitializeResult, ErrorData>> + Send + '_ {
        self.handle_initialize(request, context).boxed()
    }

    fn on_initialized(&self, context: NotificationContext<RoleServer>) -> impl Future<Output = ()> + Send + '_ {
        self.handle_initialized(context).boxed()
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.offered().cloned().collect()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.offered().find(|t| t.name == name).cloned()
    }

    fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<CallToolResponse, ErrorData>> + Send + '_ {
        self.handle_call_tool(request, context).boxed()
    }

    async fn complete(
        &self,
        _r: CompleteRequestParams,
        _c: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        Err(method_not_found("completion/complete"))
    }

    async fn list_prompts(
        &self,
        _r: Option<PaginatedRequestParams>,
        _c: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        Err(method_not_found("prompts/list"))
    }

    fn list_resources(
        &self,
        r: Option<PaginatedRequestParams>,
        c: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ListResourcesResult, ErrorData>> + Send + '_ {
        self.handle_list_resources(r, c).boxed()
    }

    async fn list_resource_templates(
        &self,
        _r: Option<PaginatedRequestParams>,
        _c: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(ListResourceTemplatesResult::with_all_items(resources::templates()))
    }

    fn read_resource(
        &self,
        r: ReadResourceRequestParams,
        c: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<ReadResourceResponse, ErrorData>> + Send + '_ {
        self.handle_read_resource(r, c).boxed()
    }

    // resources/subscribe and unsubscribe are the subscription methods of every protocol version
    // that has `initialize` (rmcp marks them legacy for its 2026-07-28 `subscriptions/listen`).
    #[allow(deprecated)]
    fn subscribe(
        &self,
        r: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> impl Future<Output = Result<(), ErrorData>> + Send + '_ {
        self.handle_subscribe(r, context).boxed()
    }

    /// Protocol 2026-07-28 subscribes with `subscriptions/listen`: accept the URIs that name a
    /// resource and the resource list, and stream their changes until the client cancels.
    fn accepted_subscription_filter(&self, requested: &SubscriptionFilter) -> Option<SubscriptionFilter> {
        Some(subscriptions::accept(requested, self.bound()))
    }

    fn listen(&self, context: SubscriptionContext) -> impl Future<Output = Result<(), ErrorData>> + Send + '_ {
        self.handle_listen(context).boxed()
    }

    #[allow(deprecated)]
    async fn unsubscribe(&self, r: UnsubscribeRequestParams, _c: RequestContext<RoleServer>) -> Result<(), ErrorData> {
        self.subscriptions.unsubscribe(&r.uri);
        Ok(())
    }
}
