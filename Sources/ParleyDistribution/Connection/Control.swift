/// Control message tags (erl_dist_protocol, "Protocol between connected nodes").
enum Control {
    static let link = 1, send = 2, exit = 3, unlink = 4, regSend = 6, groupLeader = 7, exit2 = 8
    static let sendTT = 12, exitTT = 13, regSendTT = 16, exit2TT = 18
    static let monitorP = 19, demonitorP = 20, monitorPExit = 21
    static let unlinkId = 35, unlinkIdAck = 36
}
