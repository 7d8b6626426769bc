%% libcluster's Gossip strategy as its wire format is documented
%% (shared/design/clusters-research.md §1.1: "heartbeat::" ++ term_to_binary(#{node => node()}),
%% or IV ++ AES-256-CBC(SHA-256(secret), PKCS#7) of it), written from those facts for the
%% tests: it broadcasts heartbeats, connects to every node it hears, and counts what it
%% heard and what it dropped. Not libcluster's code.
-module(gossip_peer).
-export([start/3, heard/0, dropped/0]).

start(Port, Address, Secret) ->
    Self = self(),
    Pid = spawn(fun() ->
        {ok, S} = gen_udp:open(Port, [binary, {active, true}, {ip, {0,0,0,0}}, {reuseaddr, true}, {broadcast, true},
                                      {raw, 1, 15, <<1:32/native>>}]),
        register(gossip_peer, self()),
        Self ! started,
        self() ! heartbeat,
        loop(S, Port, Address, Secret, [], 0)
    end),
    receive started -> {ok, Pid} after 5000 -> error end.

heard() -> call(heard).
dropped() -> call(dropped).

call(What) ->
    gossip_peer ! {What, self()},
    receive {What, V} -> V after 5000 -> timeout end.

loop(S, Port, Address, Secret, Heard, Dropped) ->
    receive
        heartbeat ->
            Plain = <<"heartbeat::", (term_to_binary(#{node => node()}))/binary>>,
            ok = gen_udp:send(S, Address, Port, encrypt(Secret, Plain)),
            erlang:send_after(rand:uniform(300), self(), heartbeat),
            loop(S, Port, Address, Secret, Heard, Dropped);
        {udp, S, _Ip, _InPort, Data} ->
            case decode(Secret, Data) of
                {ok, #{node := N}} when is_atom(N), N =:= node() ->
                    loop(S, Port, Address, Secret, Heard, Dropped);
                {ok, #{node := N}} when is_atom(N) ->
                    net_kernel:connect_node(N),
                    loop(S, Port, Address, Secret, lists:usort([N | Heard]), Dropped);
                _ ->
                    loop(S, Port, Address, Secret, Heard, Dropped + 1)
            end;
        {heard, From} -> From ! {heard, Heard}, loop(S, Port, Address, Secret, Heard, Dropped);
        {dropped, From} -> From ! {dropped, Dropped}, loop(S, Port, Address, Secret, Heard, Dropped)
    end.

encrypt(none, Plain) -> Plain;
encrypt(Secret, Plain) ->
    IV = crypto:strong_rand_bytes(16),
    Pad = 16 - (byte_size(Plain) rem 16),
    Padded = <<Plain/binary, (binary:copy(<<Pad>>, Pad))/binary>>,
    <<IV/binary, (crypto:crypto_one_time(aes_256_cbc, crypto:hash(sha256, Secret), IV, Padded, true))/binary>>.

decode(none, <<"heartbeat::", Rest/binary>>) -> safe_term(Rest);
decode(none, _) -> error;
decode(Secret, <<IV:16/binary, CT/binary>>) when CT =/= <<>>, byte_size(CT) rem 16 =:= 0 ->
    try crypto:crypto_one_time(aes_256_cbc, crypto:hash(sha256, Secret), IV, CT, false) of
        Padded ->
            Pad = binary:last(Padded),
            case Pad >= 1 andalso Pad =< 16 andalso Pad =< byte_size(Padded) of
                true ->
                    case binary:part(Padded, 0, byte_size(Padded) - Pad) of
                        <<"heartbeat::", Rest/binary>> -> safe_term(Rest);
                        _ -> error
                    end;
                false -> error
            end
    catch _:_ -> error
    end;
decode(_, _) -> error.

safe_term(Bin) -> try {ok, binary_to_term(Bin)} catch _:_ -> error end.
