%% The Erlang side of Parley's distribution tests: a gen_server, an echo process, and
%% helpers the Swift tests call through rpc (rex) to act from this node.
-module(parley_interop).
-behaviour(gen_server).
-export([start/0, init/1, handle_call/3, handle_cast/2, handle_info/2]).
-export([echo_loop/0, all_terms/0, check_terms/1, diff_terms/1, call/3, cast/2, ping/1,
         spawn_waiter/0, spawn_linker/2, spawn_monitor_reporter/2, monitor_name/3,
         unlink_after/3, send_to/2, exit_pid/2, spawn_node_monitor/2, traced_call/3]).

start() ->
    {ok, _} = gen_server:start({local, erl_counter}, ?MODULE, 0, []),
    register(erl_echo, spawn(fun echo_loop/0)),
    ok.

init(N) -> {ok, N}.
handle_call(get, _From, N) -> {reply, N, N};
handle_call({add, K}, _From, N) -> {reply, N + K, N + K};
handle_call({sleep, Ms}, _From, N) -> timer:sleep(Ms), {reply, slept, N};
handle_call(crash, _From, _N) -> exit(crashed_on_purpose);
%% The label of the sequential-trace token the call arrived with (a Parley caller's trace context).
handle_call(trace_label, _From, N) -> {reply, seq_trace:get_token(label), N};
handle_call(Other, _From, N) -> {reply, {unknown, Other}, N}.
handle_cast(reset, _) -> {noreply, 0};
handle_cast(_, N) -> {noreply, N}.
handle_info(_, N) -> {noreply, N}.

echo_loop() -> receive {From, T} -> From ! T, echo_loop() end.

%% Every kind of term an OTP 25 node sends, built the same way each time.
all_terms() ->
    Ref = case persistent_term:get(parley_ref, undefined) of
              undefined -> R = make_ref(), persistent_term:put(parley_ref, R), R;
              R -> R
          end,
    Port = case persistent_term:get(parley_port, undefined) of
               undefined -> P = hd(erlang:ports()), persistent_term:put(parley_port, P), P;
               P -> P
           end,
    Fun = case persistent_term:get(parley_fun, undefined) of
              undefined -> X = 42, F = fun(Y) -> X + Y end, persistent_term:put(parley_fun, F), F;
              F -> F
          end,
    [0, 255, 256, -1, 2147483647, -2147483648, 2147483648, 9223372036854775807,
     -9223372036854775808, 9223372036854775808, 1 bsl 300, -(1 bsl 300),
     3.14, -0.0, 1.0e300, ok, 'héllo', '', true, false, nil,
     <<>>, <<"binary">>, <<1,2,3:5>>, {}, {a, {b, {c}}}, erlang:make_tuple(300, x),
     [], [1,2,3], "string", lists:seq(1, 70000), [a | b], [1, 2 | 3],
     #{}, #{a => 1, <<"b">> => [2], {c} => #{d => e}},
     whereis(erl_echo), list_to_pid("<0.1.0>"), Ref, Port, fun lists:map/2, Fun,
     [{nested, [#{k => {1, [2, <<3>>]}}]}]].

%% true if the list the Swift side sends back is exactly what all_terms/0 builds.
check_terms(L) -> L =:= all_terms().

%% The positions (1-based) and Erlang's own values where L differs from all_terms/0.
diff_terms(L) ->
    [{I, A, B} || {I, A, B} <- lists:zip3(lists:seq(1, length(L)), L, all_terms()), A =/= B].

%% gen_server calls and casts from this node, results returned to the rpc caller.
call(Server, Request, Timeout) ->
    try gen_server:call(Server, Request, Timeout) of
        R -> {ok, R}
    catch
        exit:{timeout, _} -> timeout;
        exit:{Reason, _} -> {exit, Reason}
    end.
cast(Server, Request) -> gen_server:cast(Server, Request).

%% A gen_server call made with a sequential-trace label set, as an Erlang caller that carries
%% a trace context does: the result, and the label the caller holds after the reply (a reply
%% without a token would have cleared it); the token is cleared afterwards.
traced_call(Server, Request, Label) ->
    seq_trace:set_token(label, Label),
    R = call(Server, Request, 5000),
    After = seq_trace:get_token(label),
    seq_trace:set_token([]),
    {R, After}.
ping(Node) -> net_adm:ping(Node).

%% A process that waits until killed.
spawn_waiter() -> spawn(fun() -> receive stop -> ok end end).

%% A process that traps exits, links to Target, and reports {linked, self()} then every
%% message it gets to ReportTo.
spawn_linker(Target, ReportTo) ->
    spawn(fun() ->
        process_flag(trap_exit, true),
        link(Target),
        ReportTo ! {linked, self()},
        forward(ReportTo)
    end).

%% A process that monitors Target and reports the DOWN message to ReportTo.
spawn_monitor_reporter(Target, ReportTo) ->
    spawn(fun() ->
        Ref = erlang:monitor(process, Target),
        ReportTo ! {monitoring, self(), Ref},
        forward(ReportTo)
    end).

%% Monitors {Name, Node} and reports the DOWN message.
monitor_name(Name, Node, ReportTo) ->
    spawn(fun() ->
        Ref = erlang:monitor(process, {Name, Node}),
        ReportTo ! {monitoring, self(), Ref},
        forward(ReportTo)
    end).

%% Links to Target, unlinks after Ms, then reports whether Target's exit reached it.
unlink_after(Target, Ms, ReportTo) ->
    spawn(fun() ->
        process_flag(trap_exit, true),
        link(Target),
        timer:sleep(Ms),
        unlink(Target),
        ReportTo ! {unlinked, self()},
        forward(ReportTo)
    end).

%% A process that monitors Node (monitor_node/2) and reports {nodedown, Node}.
spawn_node_monitor(Node, ReportTo) ->
    spawn(fun() ->
        true = monitor_node(Node, true),
        ReportTo ! {monitoring_node, self()},
        forward(ReportTo)
    end).

send_to(Dest, Msg) -> Dest ! Msg, ok.
exit_pid(Pid, Reason) -> exit(Pid, Reason).

forward(To) -> receive M -> To ! M, forward(To) end.
