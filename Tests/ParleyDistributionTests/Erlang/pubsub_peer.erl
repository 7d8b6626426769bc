%% The part phoenix_pubsub 2.2's PG2 adapter plays on an Elixir node, written from its
%% documented behaviour (shared/design/clusters-research.md §3.2-3.3) for the tests, since
%% Phoenix cannot be installed here: the pg scope 'Elixir.Phoenix.PubSub', one worker per
%% pool group ('Elixir.<Name>.Adapter', then _2, _3 ...), registered under the group's name
%% and a member of that group; a broadcast picks one group by erlang:phash2(self(), N) and
%% sends {forward_to_local, Topic, Message, Dispatcher} to its members on other nodes; a
%% worker hands what it gets to this node's subscribers. Not Phoenix's code.
-module(pubsub_peer).
-export([start/2, subscribe/2, broadcast/3, broadcast/4, direct_broadcast/4, received/1, groups/2]).

-define(SCOPE, 'Elixir.Phoenix.PubSub').

%% Names come as strings or binaries.
str(Name) when is_binary(Name) -> binary_to_list(Name);
str(Name) -> Name.

adapter(Name) -> list_to_atom("Elixir." ++ str(Name) ++ ".Adapter").

groups(Name, PoolSize) ->
    A = adapter(Name),
    [case I of 1 -> A; _ -> list_to_atom(atom_to_list(A) ++ "_" ++ integer_to_list(I)) end
     || I <- lists:seq(1, PoolSize)].

subs(Name) -> list_to_atom("pubsub_peer_subs_" ++ str(Name)).

%% start("MyApp.PubSub", PoolSize)
start(Name, PoolSize) ->
    case whereis(?SCOPE) of
        undefined -> {ok, _} = pg:start(?SCOPE);
        _ -> ok
    end,
    Subs = spawn(fun() -> subs_loop([], []) end),
    register(subs(Name), Subs),
    [begin
         W = spawn(fun() -> worker_loop(Name) end),
         register(G, W),
         ok = pg:join(?SCOPE, G, W)
     end || G <- groups(Name, PoolSize)],
    persistent_term:put({?MODULE, str(Name)}, PoolSize),
    ok.

worker_loop(Name) ->
    receive
        {forward_to_local, Topic, Message, Dispatcher} ->
            subs(Name) ! {deliver, Topic, Message, Dispatcher};
        _ -> ok
    end,
    worker_loop(Name).

%% One subscriber process per node here: it records every delivery for a topic it follows.
subs_loop(Topics, Log) ->
    receive
        {subscribe, T} -> subs_loop([T | Topics], Log);
        {deliver, T, M, D} ->
            case lists:member(T, Topics) of
                true -> subs_loop(Topics, [{T, M, D} | Log]);
                false -> subs_loop(Topics, Log)
            end;
        {received, From} -> From ! {received, lists:reverse(Log)}, subs_loop(Topics, Log)
    end.

subscribe(Name, Topic) -> subs(Name) ! {subscribe, Topic}, ok.

received(Name) ->
    subs(Name) ! {received, self()},
    receive {received, L} -> L after 5000 -> timeout end.

broadcast(Name, Topic, Message) -> broadcast(Name, Topic, Message, 'Elixir.Phoenix.PubSub').

%% Phoenix.PubSub.PG2.broadcast/4, then the local dispatch.
broadcast(Name, Topic, Message, Dispatcher) ->
    Groups = list_to_tuple(groups(Name, persistent_term:get({?MODULE, str(Name)}))),
    Group = element(erlang:phash2(self(), tuple_size(Groups)) + 1, Groups),
    Forward = {forward_to_local, Topic, Message, Dispatcher},
    [P ! Forward || P <- pg:get_members(?SCOPE, Group), node(P) =/= node()],
    subs(Name) ! {deliver, Topic, Message, Dispatcher},
    ok.

%% Phoenix.PubSub.direct_broadcast/5: straight to the node's first worker, by name.
direct_broadcast(Node, Name, Topic, Message) ->
    {adapter(Name), Node} ! {forward_to_local, Topic, Message, 'Elixir.Phoenix.PubSub'},
    ok.
